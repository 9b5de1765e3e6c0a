import { DataTypes, Model, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/** A logged-in admin browser. `id` is the SHA-256 (hex) of the cookie's token, never the token. */
export class AdminSession extends Model<InferAttributes<AdminSession>, InferCreationAttributes<AdminSession>> {
  declare id: string
  declare userId: number
  declare ip: string | null
  declare createdAt: Date
  declare expiresAt: Date

  static initModel (sequelize: Sequelize): typeof AdminSession {
    return AdminSession.init({
      id: { type: DataTypes.STRING(64), primaryKey: true },
      userId: { type: DataTypes.INTEGER, allowNull: false },
      ip: { type: DataTypes.STRING(64), allowNull: true },
      createdAt: { type: DataTypes.DATE, allowNull: false },
      expiresAt: { type: DataTypes.DATE, allowNull: false }
    }, { sequelize, tableName: 'admin_sessions', underscored: true, timestamps: false })
  }
}
