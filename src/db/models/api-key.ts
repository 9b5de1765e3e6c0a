import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/**
 * A user's API key, kept as the SHA-256 of the key and a unique lookup
 * prefix. A deleted key stays (deletedAt set) for a while, so that using it
 * is answered as a revoked credential, not a guess.
 */
export class ApiKey extends Model<InferAttributes<ApiKey>, InferCreationAttributes<ApiKey>> {
  declare id: string
  /** null once the user was deleted: the key is then revoked */
  declare userId: number | null
  declare name: string
  declare lookup: string
  declare keyHash: string
  declare tokenVersion: number
  declare createdAt: CreationOptional<Date>
  declare expiresAt: Date | null
  declare lastUsedAt: CreationOptional<Date | null>
  declare deletedAt: CreationOptional<Date | null>

  static initModel (sequelize: Sequelize): typeof ApiKey {
    return ApiKey.init({
      id: { type: DataTypes.UUID, primaryKey: true },
      userId: { type: DataTypes.INTEGER, allowNull: true },
      name: { type: DataTypes.STRING(100), allowNull: false },
      lookup: { type: DataTypes.STRING(16), allowNull: false, unique: true },
      keyHash: { type: DataTypes.STRING(64), allowNull: false },
      tokenVersion: { type: DataTypes.INTEGER, allowNull: false },
      createdAt: DataTypes.DATE,
      expiresAt: { type: DataTypes.DATE, allowNull: true },
      lastUsedAt: { type: DataTypes.DATE, allowNull: true },
      deletedAt: { type: DataTypes.DATE, allowNull: true }
    }, { sequelize, tableName: 'api_keys', underscored: true, updatedAt: false })
  }
}
