import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'
import type { Role } from '../../contract/roles.js'

/** The direct grant: user `userId` holds `role` on robot `robotId`, until `expiresAt` (null: for good). */
export class RobotAccess extends Model<InferAttributes<RobotAccess>, InferCreationAttributes<RobotAccess>> {
  declare userId: number
  declare robotId: number
  declare role: CreationOptional<Role>
  declare expiresAt: CreationOptional<Date | null>
  declare createdAt: CreationOptional<Date>

  static initModel (sequelize: Sequelize): typeof RobotAccess {
    return RobotAccess.init({
      userId: { type: DataTypes.INTEGER, primaryKey: true },
      robotId: { type: DataTypes.INTEGER, primaryKey: true },
      role: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'operator' },
      expiresAt: { type: DataTypes.DATE, allowNull: true },
      createdAt: DataTypes.DATE
    }, { sequelize, tableName: 'robot_access', underscored: true, updatedAt: false })
  }
}
