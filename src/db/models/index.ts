// The explicit list of models: init all, then associations.
import type { Sequelize } from 'sequelize'
import { AdminSession } from './admin-session.js'
import { ApiKey } from './api-key.js'
import { AuditEvent } from './audit-event.js'
import { Command } from './command.js'
import { Frame } from './frame.js'
import { Group, GroupGrant, GroupRobot } from './group.js'
import { RobotAccess } from './robot-access.js'
import { RobotModel } from './robot-model.js'
import { Robot } from './robot.js'
import { User } from './user.js'

export { AdminSession, ApiKey, AuditEvent, Command, Frame, Group, GroupGrant, GroupRobot, Robot, RobotAccess, RobotModel, User }

export function initModels (sequelize: Sequelize) {
  const models = {
    User: User.initModel(sequelize),
    Robot: Robot.initModel(sequelize),
    RobotAccess: RobotAccess.initModel(sequelize),
    Frame: Frame.initModel(sequelize),
    Command: Command.initModel(sequelize),
    AuditEvent: AuditEvent.initModel(sequelize),
    AdminSession: AdminSession.initModel(sequelize),
    Group: Group.initModel(sequelize),
    GroupRobot: GroupRobot.initModel(sequelize),
    GroupGrant: GroupGrant.initModel(sequelize),
    ApiKey: ApiKey.initModel(sequelize),
    RobotModel: RobotModel.initModel(sequelize)
  }
  User.belongsToMany(Robot, { through: RobotAccess, foreignKey: 'userId', otherKey: 'robotId', as: 'robots' })
  Robot.belongsToMany(User, { through: RobotAccess, foreignKey: 'robotId', otherKey: 'userId', as: 'users' })
  Frame.belongsTo(Robot, { foreignKey: 'robotId', as: 'robot' })
  Command.belongsTo(Robot, { foreignKey: 'robotId', as: 'robot' })
  return models
}

export type Models = ReturnType<typeof initModels>
